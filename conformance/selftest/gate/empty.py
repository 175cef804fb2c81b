"""A module with none of the API's functions: the gate must fail on it."""
