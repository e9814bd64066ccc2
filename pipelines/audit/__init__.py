"""Validity audit: stages that flag items for review (answer patterns, blind
answerability, label suspicion); a flag never drops an item by itself."""
