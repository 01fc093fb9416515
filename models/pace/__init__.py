"""The pace-compatibility classifier: data generator, network, training, evaluation, card.

``python -m models.pace.data`` then ``python -m models.pace.train`` (or ``python -m models.train_all``).
"""
