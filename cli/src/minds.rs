//! The minds of this process, shared by every part of the command line.

/// The minds of this process (the backends and every model loaded), shared by the
/// sends, the synthesis cycles and the session.
pub fn minds() -> &'static batos::mind::Minds {
    static MINDS: std::sync::OnceLock<batos::mind::Minds> = std::sync::OnceLock::new();
    MINDS.get_or_init(batos::minds)
}
