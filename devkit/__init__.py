"""Development and test helpers: find or start a Redis, run the stack locally. Not part of app/."""
