"""The transport bar (play/pause, stop, loop, speed, source, balance, follow, instruments,
“Follow microphone”) and :func:`install_playback`, which puts playback into a main window.

Task
----
Widgets only: every control calls a :class:`gui.transport.PlaybackController` (or
:class:`gui.live_follow.LiveFollowController`) method and redraws from their signals; no audio
work happens here. :func:`install_playback` adds the bar under the main toolbar, binds the space
bar to play/pause, makes a click in any linked view seek there, and releases the sound device
when the window closes — without the main window having to know more than one call.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QAction, QKeySequence, QPainter
from PySide6.QtWidgets import QComboBox, QLabel, QMenu, QSizePolicy, QSlider, QStyle, QToolBar, QToolButton

from gui.live_follow import LiveFollowController
from gui.playback import PLAYING, Player
from gui.transport import FOLLOW_MODES, PlaybackController
from gui.views.base import TimeView, format_time_s

SPEEDS = tuple(round(0.5 + 0.1 * k, 1) for k in range(11))  # 0.5× … 1.5×
SOURCE_LABELS = {"recording": "Recording", "midi": "Aligned MIDI", "both": "Both (rec. L · MIDI R)"}
FOLLOW_LABELS = {"page": "Follow: page", "continuous": "Follow: continuous", "off": "Follow: off"}


class ElidedLabel(QLabel):
    """A one-line label that shrinks with its toolbar, ending its text in "…" (the whole text is
    its tooltip). A plain QLabel asks for its whole text's width, so a narrow window pushed the
    transport's messages into the toolbar's overflow menu, where nobody sees them."""

    MIN_WIDTH_PX = 120

    def __init__(self, text: str = "", parent=None):
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        return QSize(self.MIN_WIDTH_PX, super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:
        QPainter(self).drawText(self.contentsRect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                                self.shown_text())

    def shown_text(self) -> str:
        """The text as drawn at the label's current width."""
        return self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width())


class TransportBar(QToolBar):
    """Buttons over a :class:`PlaybackController` and a :class:`LiveFollowController`."""

    def __init__(self, controller: PlaybackController, live: LiveFollowController, parent=None):
        super().__init__("Transport", parent)
        self.setObjectName("transportToolbar")
        self.setMovable(False)
        self.controller, self.live = controller, live
        style = self.style()
        self._play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self._pause_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPause)

        self.play_action = self.addAction(self._play_icon, "Play", controller.toggle_play)
        self.play_action.setToolTip("Play / pause (Space)")
        self.stop_action = self.addAction(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop",
                                          controller.stop)
        self.loop_action = self.addAction("Loop")
        self.loop_action.setCheckable(True)
        self.loop_action.setToolTip("Loop the selected time range (Shift+drag or right-drag to select)")
        self.loop_action.toggled.connect(self._on_loop_toggled)
        self.time_label = QLabel(" –:– ")
        self.time_label.setMinimumWidth(150)
        self.addWidget(self.time_label)
        self.addSeparator()

        self.speed_box = QComboBox()
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}×", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.setToolTip("Playback speed (the pitch stays the same)")
        self.speed_box.currentIndexChanged.connect(lambda i: controller.set_speed(self.speed_box.itemData(i)))
        self.addWidget(self.speed_box)

        self.source_box = QComboBox()
        for key, label in SOURCE_LABELS.items():
            self.source_box.addItem(label, key)
        self.source_box.setToolTip("What to hear: the recording, the MIDI synthesized in the recording's time, "
                                   "or both (recording left, MIDI right)")
        self.source_box.currentIndexChanged.connect(self._on_source)
        self.addWidget(self.source_box)

        self.balance = QSlider(Qt.Orientation.Horizontal)
        self.balance.setRange(-100, 100)
        self.balance.setFixedWidth(110)
        self.balance.setToolTip("Balance: left = only the recording, right = only the MIDI")
        self.balance.valueChanged.connect(lambda v: controller.set_balance(v / 100.0))
        self.balance.setEnabled(False)
        self.addWidget(QLabel(" Rec"))
        self.addWidget(self.balance)
        self.addWidget(QLabel("MIDI "))

        self.instruments_button = QToolButton()
        self.instruments_button.setText("Instruments")
        self.instruments_button.setToolTip("Mute or solo MIDI instruments")
        self.instruments_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.instruments_menu = QMenu(self.instruments_button)
        self.instruments_button.setMenu(self.instruments_menu)
        self.instruments_button.setEnabled(False)
        self.addWidget(self.instruments_button)

        self.follow_box = QComboBox()
        for key in FOLLOW_MODES:
            self.follow_box.addItem(FOLLOW_LABELS[key], key)
        self.follow_box.setToolTip("How the views scroll with the playhead")
        self.follow_box.currentIndexChanged.connect(lambda i: controller.set_follow_mode(self.follow_box.itemData(i)))
        self.addWidget(self.follow_box)
        self.addSeparator()

        self.mic_action = self.addAction("Follow microphone")
        self.mic_action.setCheckable(True)
        self.mic_action.setToolTip("Listen to a live performance and move the playhead to where it is in the MIDI")
        self.mic_action.toggled.connect(self._on_mic_toggled)

        self.status = ElidedLabel("")
        self.status.setObjectName("transportStatus")
        self.addWidget(self.status)

        controller.state_changed.connect(self._on_state)
        controller.message.connect(self.show_message)
        controller.busy_changed.connect(lambda text: self.status.setText(f"  {text}…" if text else ""))
        controller.sound_changed.connect(self._on_sound)
        controller.session.events.playhead_moved.connect(self._on_playhead)
        controller.session.events.selection_changed.connect(self._on_selection)
        live.message.connect(self.show_message)
        live.following_changed.connect(self._on_following)

    # -- reactions ------------------------------------------------------------------------------
    def show_message(self, text: str) -> None:
        """Device trouble, preparation errors, hints: shown next to the buttons (and as a tooltip)."""
        self.status.setText(f"  {text}")
        self.status.setToolTip(text)
        self.last_message = text

    def _on_state(self, state: str) -> None:
        playing = state == PLAYING
        self.play_action.setIcon(self._pause_icon if playing else self._play_icon)
        self.play_action.setText("Pause" if playing else "Play")

    def _on_playhead(self, t_s) -> None:
        pair = self.controller.session.pair
        total = pair.audio_duration_s if pair is not None else None
        self.time_label.setText(f" {format_time_s(t_s)} / {format_time_s(total)} ")

    def _on_source(self, index: int) -> None:
        source = self.source_box.itemData(index)
        self.balance.setEnabled(source == "both")
        self.controller.set_source(source)

    def _on_loop_toggled(self, on: bool) -> None:
        if not self.controller.set_loop_selection(on) and on:
            self.loop_action.blockSignals(True)
            self.loop_action.setChecked(False)
            self.loop_action.blockSignals(False)

    def _on_selection(self, selection) -> None:
        if self.loop_action.isChecked():
            if selection is None:
                self.loop_action.setChecked(False)
            else:
                self.controller.set_loop_selection(True)

    def _on_sound(self, sound) -> None:
        self.instruments_menu.clear()
        names = sound.instrument_names if sound is not None else []
        for i, name in enumerate(names):
            sub = self.instruments_menu.addMenu(name)
            for label, kwarg in (("Mute", "muted"), ("Solo", "soloed")):
                action = sub.addAction(label)
                action.setCheckable(True)
                action.setChecked(i in (self.controller.muted if kwarg == "muted" else self.controller.soloed))
                action.toggled.connect(lambda on, i=i, kwarg=kwarg: self.controller.set_instrument(i, **{kwarg: on}))
        self.instruments_button.setEnabled(bool(names))

    def _on_mic_toggled(self, on: bool) -> None:
        if on and not self.live.following:
            if not self.live.start():
                self._set_mic_checked(False)
        elif not on and self.live.following:
            self.live.stop()

    def _on_following(self, following: bool) -> None:
        self._set_mic_checked(following)
        self.play_action.setEnabled(not following)

    def _set_mic_checked(self, on: bool) -> None:
        self.mic_action.blockSignals(True)
        self.mic_action.setChecked(on)
        self.mic_action.blockSignals(False)


class _WindowHooks(QObject):
    """Releases the device when the window closes; turns clicks in the views into seeks."""

    def __init__(self, window, controller: PlaybackController, live: LiveFollowController):
        super().__init__(window)
        self.controller, self.live = controller, live
        self._hooked: set[int] = set()
        window.installEventFilter(self)
        for view in window.views.views.values():
            self._hook(view)
        window.views.splitter.installEventFilter(self)  # views added later (window.add_view) seek too

    def _hook(self, view) -> None:
        if id(view) in self._hooked or not hasattr(view, "viewbox"):
            return
        self._hooked.add(id(view))
        view.scene().sigMouseClicked.connect(lambda ev, v=view: self._clicked(v, ev))

    def _clicked(self, view, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double() or ev.modifiers():
            return
        vb = view.viewbox
        pos = ev.scenePos()
        if vb.sceneBoundingRect().contains(pos):
            self.controller.seek(vb.mapSceneToView(pos).x())

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Close and obj is self.parent():
            self.live.stop()
            self.controller.shutdown()
        elif event.type() == QEvent.Type.ChildAdded and isinstance(event.child(), TimeView):
            self._hook(event.child())
        return False


def install_playback(window, player: Player | None = None, input_stream_factory=None):
    """Give ``window`` (a :class:`gui.main_window.MainWindow`) playback and live following.

    Adds the transport bar under the main toolbar, a Space shortcut for play/pause, seeking by a
    click in any view, and releases the sound device on close. Returns the controller; the bar,
    the live controller and the action are kept on ``window`` as ``transport_bar``,
    ``live_follow`` and ``actions["play_pause"]``. On a window that already has playback
    (``window.playback``), only swaps in ``player`` / ``input_stream_factory`` when given.
    """
    existing = getattr(window, "playback", None)
    if isinstance(existing, PlaybackController):  # already installed (the main window does it): swap devices
        if player is not None:
            existing.set_player(player)
        if input_stream_factory is not None:
            window.live_follow.stream_factory = input_stream_factory
        return existing
    controller = PlaybackController(window.session, window.runner, player=player, parent=window)
    live = LiveFollowController(window.session, window.runner, controller, stream_factory=input_stream_factory,
                                parent=window, piano_roll=getattr(window, "piano_roll_view", None))
    bar = TransportBar(controller, live, window)
    window.addToolBarBreak()
    window.addToolBar(bar)
    action = QAction("Play / Pause", window)
    action.setShortcut(QKeySequence(Qt.Key.Key_Space))
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(controller.toggle_play)
    window.addAction(action)
    if hasattr(window, "actions") and isinstance(window.actions, dict):
        window.actions["play_pause"] = action
    window.transport_bar, window.live_follow, window.playback_hooks = bar, live, _WindowHooks(window, controller, live)
    window.playback = controller
    return controller
