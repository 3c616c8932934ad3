"""Staff accounts: who may use the console, how they prove it, and what each role may do."""
