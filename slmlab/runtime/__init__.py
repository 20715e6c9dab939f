"""The shared model runtime: loading (`models`), generation (`generate`), prompt/target rendering
(`chat_format`) and token counting (`tokens`). Every step that touches a model goes through here."""
