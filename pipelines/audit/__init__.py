"""The validity audit (issue 23): evidence that an item may be answerable without its images,
carries an exploitable answer pattern, or is mislabeled, recorded as flags in ``audit.flags``.

* :mod:`pipelines.audit.patterns`: the model-free audit, pure functions (answer positions,
  longest/shortest option, blind heuristics, answers in the question, frequent and repeated
  answers);
* :mod:`pipelines.audit.stages`: the Beam stages ``AuditAnswerPatterns`` (flags) and
  ``DropFlagged`` (the one decision stage: drops only what ``audit.drop_flags`` names);
* :mod:`pipelines.audit.blind`, :mod:`pipelines.audit.blind_flag`: the blind-answerability
  audit (a text-only language model scores each item without its images: ``scores.blind``,
  then the ``blind_answerable`` and ``answer_leakage`` flags);
* :mod:`pipelines.audit.label_score`, :mod:`pipelines.audit.label_flag`: the optional
  label-suspicion audit (a vision-language model answers with the images; ``scores.label``,
  then the ``label_suspect`` flag).

A flag is evidence for review, never a verdict (README, "Validity audit").
"""
