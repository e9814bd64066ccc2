"""Validity audit: stages that flag items for review (answer patterns, blind answerability, label suspicion)."""
