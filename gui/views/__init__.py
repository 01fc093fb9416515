"""Views on the shared time axis (spectrogram, piano roll, drum lane, warping path) and the status
line. Each observes a :class:`gui.session.Session` and redraws from its events; none computes
features. See :mod:`gui.views.base` for the interaction every time view shares."""
