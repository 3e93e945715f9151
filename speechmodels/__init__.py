"""The model code the book and the experiments run: never shipped to students, never mounted in the grader's sandbox.

``speechcourse`` is what students receive (corpus, front end, plots, self-checks). The models
of chapters 2-5, their training recipe and their decoders live here, because they would
answer the labs.
"""
