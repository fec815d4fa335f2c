"""The llm service: the character's brain (SOLAMI LLM or a chat LLM), streaming."""
