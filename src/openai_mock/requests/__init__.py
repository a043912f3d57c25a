"""Request bodies to what the engine answers, one module per endpoint, refusing what the real
API refuses with its messages. `checks.py` is the field-checking kernel; `fields.py` what every
reader shares."""
