"""aftercare: post-procedure aftercare reminders by SMS and email."""

__version__ = "0.1.0"
