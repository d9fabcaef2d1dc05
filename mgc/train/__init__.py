"""Training MGCNet (issue 13): the step under tf.distribute (trainer) and
name-based TF1-style checkpoints with the optimizer state (checkpoints)."""
