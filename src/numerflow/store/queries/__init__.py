"""Query functions the other rooms call, one module per concern (no SQL outside store/)."""
