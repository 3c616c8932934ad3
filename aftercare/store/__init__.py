"""The only package that issues queries: every read and write of the database."""
