"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests (being written)."""
