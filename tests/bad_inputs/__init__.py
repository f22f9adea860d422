"""Bad inputs: every one gets a typed error naming what is wrong, and loses nothing committed."""
