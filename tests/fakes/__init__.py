"""Test doubles of the services outside the program, as strict as the real ones."""
