"""Delivery channels. Each sends one message and says how it went; none touches the database."""
