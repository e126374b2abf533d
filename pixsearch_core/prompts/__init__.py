"""Prompts as the model sees them, shared by training and evaluation (a floor below both): `sample.Sample` (one
conversation with its image, spans and masks; `segmentation_sample`, the stage-1 segmentation prompt), `collate.Collator`
(chat template -> token ids, labels, B/I/O tags, information-token mask) and `labels` (Eq. 9-10 targets)."""
