"""What the commands exchange with the terminal: stdout kept for data (logs to stderr, libraries quiet unless
asked), and the texts a command reads, checked before any engine starts."""
