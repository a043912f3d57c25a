"""The pytest plugin (entry point `pytest11`): fixtures `openai_mock` and `openai_mock_config`."""
