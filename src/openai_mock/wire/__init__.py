"""Wire encoders: pure functions from a Plan to OpenAI's exact shapes. No timing, no I/O."""
