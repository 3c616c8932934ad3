"""A fake of the Twilio REST API on 127.0.0.1 (being written)."""
