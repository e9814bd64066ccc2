"""The validity audit: stages that flag items for review (``schemas.audit``); a flag never
drops an item.

Blind answerability (a text-only language model scores each item without its images):
:mod:`pipelines.audit.blind` (``ScoreBlindAnswerability``, RunInference; imports torch),
:mod:`pipelines.audit.blind_flag` (``FlagBlindAnswerable``, ``SkipBlindScoring``),
:mod:`pipelines.audit.blind_items` (what is scored, the formulas),
:mod:`pipelines.audit.blind_model` (loading, preflight, fixed-shape forward passes).
"""
