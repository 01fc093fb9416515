"""The ``earworm`` command and its sub-commands.

Contract (see docs/ARCHITECTURE.md): exit 0 on success, 2 for bad usage (argparse), 1 with a
one-line ``error: <file>: <reason>`` for bad input. Batch commands report bad files and go on.

Each sub-command is a pair: ``_add_<name>(subparsers)`` declares its arguments, and the function
it sets as ``func`` runs it. Work is done by the capability modules; this file only parses,
dispatches and prints.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from engine.errors import EarwormError
from engine.text import count_noun


def _add_gui(sub):
    p = sub.add_parser("gui", help="open the window (the bundled demo pair if no files)")
    p.add_argument("midi", nargs="?", help="a MIDI file")
    p.add_argument("audio", nargs="?", help="a recording (wav, flac, ogg, mp3)")
    p.add_argument("--screenshot", metavar="PNG", help="render offscreen to PNG once the alignment is drawn, then exit")
    p.add_argument("--project", metavar="DB", help="a project database to open")
    p.add_argument("--panel", metavar="TITLE", help="bring this docked panel to the front (e.g. Identify); "
                                                     "with --screenshot, also dock the panels")
    p.set_defaults(func=_run_gui)


def _run_gui(args) -> int:
    # Imported here so that the headless commands never load Qt.
    from gui.app import run_app

    return run_app(midi=args.midi, audio=args.audio, screenshot=args.screenshot, project=getattr(args, "project", None),
                   panel=getattr(args, "panel", None))


def _add_align(sub):
    p = sub.add_parser("align", help="align a MIDI file to a recording")
    p.add_argument("midi", help="a MIDI file")
    p.add_argument("audio", help="a recording (wav, flac, ogg, mp3)")
    p.add_argument("--out", metavar="ALIGNED.mid", help="write the MIDI warped into the recording's timeline")
    p.add_argument("--json", metavar="RESULT.json", help="write confidence, path and parameters as JSON")
    p.add_argument("--midi-features", choices=["synth", "pianoroll"], default=None,
                   help="features of the MIDI: straight from the piano roll (fast) or from a FluidSynth rendering")
    p.add_argument("--soundfont", metavar="SF2", help="soundfont for --midi-features synth")
    p.set_defaults(func=_run_align)


def _run_align(args) -> int:
    from engine.align import AlignParams, align

    params = AlignParams()
    if args.midi_features:
        params.midi_features = args.midi_features
    if args.soundfont:
        params.soundfont = args.soundfont
    result = align(args.midi, args.audio, params=params)
    if args.out:
        result.write_warped_midi(args.out)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json()) + "\n")
    print(f"confidence {result.confidence:.3f}  midi {result.midi_duration_s:.2f} s  "
          f"audio {result.audio_duration_s:.2f} s  path {len(result.path_midi_s)} points  "
          f"({result.timings.get('total_s', 0):.2f} s)")
    return 0


def _add_labels(sub):
    p = sub.add_parser("labels", help="export or import a project's labels and scores (CSV, LMD JSON, JAMS)")
    verbs = p.add_subparsers(dest="labels_command", required=True)
    formats = "csv (long: midi,audio,label,note,who,when) | matrix (1/0) | scores (floats) | " \
              "lmd (match_scores.json) | jams (a folder, paces) | paces (file,bpm…)"
    for verb, target, what in (("export", "OUT", "file (a folder for jams) to write"),
                               ("import", "IN", "file (or folder of .jams) to read")):
        q = verbs.add_parser(verb, help=f"{verb} labels or scores")
        q.add_argument("--project", metavar="DB", help="the project file (default: the default project)")
        q.add_argument("--format", required=True, choices=["csv", "matrix", "scores", "lmd", "jams", "paces"],
                       help=formats)
        q.add_argument("--kind", default="match_score", metavar="RESULT_KIND",
                       help="which results scores/lmd hold (match_score, alignment_confidence…)")
        q.add_argument("path", metavar=target, help=what)
    q = verbs.add_parser("add-folder", help="add a folder's MIDI and audio files to the project (creating it)")
    q.add_argument("--project", metavar="DB", help="the project file (default: the default project)")
    q.add_argument("path", metavar="DIR", help="a folder, searched recursively")
    p.set_defaults(func=_run_labels)


def _run_labels(args) -> int:
    from engine.labels_io import LabelsImportError, export_labels, import_labels
    from engine.store import Project

    with Project(args.project, create=args.labels_command == "add-folder") as project:
        if args.labels_command == "add-folder":
            scan = project.add_folder(args.path)
            for path, reason in scan.unreadable:  # batch work reports bad files and goes on
                print(f"error: {path}: {reason}", file=sys.stderr)
            print(f"{len(scan.added)} added, {len(scan.updated)} updated, {scan.unchanged} unchanged, "
                  f"{len(scan.unreadable)} unreadable; project {project.path}")
            return 0
        if args.labels_command == "export":
            n = export_labels(project, args.format, args.path, result_kind=args.kind)
            print(f"wrote {n} {'files' if args.format == 'jams' else 'rows'} to {args.path}")
            return 0
        try:
            report = import_labels(project, args.format, args.path, result_kind=args.kind)
        except LabelsImportError as exc:
            for bad in exc.bad_rows:  # every bad row, then the one-line error
                print(f"bad row: {bad}", file=sys.stderr)
            raise
    print(f"read {report.n_rows} from {args.path}; {report.n_changed} stored in {project.path}")
    return 0


def _add_tempo(sub):
    p = sub.add_parser("tempo", help="tempo candidates of a recording and the paces it fits")
    p.add_argument("audio", help="a recording (wav, flac, ogg, mp3)")
    p.add_argument("--json", metavar="CANDIDATES.json",
                   help='write {"candidates": [{"bpm", "salience", "pace_probability", "compatible"}, ...]}')
    p.add_argument("--project", metavar="DB",
                   help="also store the candidates in this project (adding the recording): the pace panel offers them")
    p.set_defaults(func=_run_tempo)


def _run_tempo(args) -> int:
    from engine.tempo import estimate_paces, store_candidates

    candidates = estimate_paces(args.audio)
    if args.json:
        Path(args.json).write_text(json.dumps({"candidates": [c.to_json() for c in candidates]}, indent=1))
    if args.project:
        from engine.store import Project

        with Project(args.project) as project:
            record = project.file_by_path(args.audio) or project.add_file(args.audio)
            store_candidates(project, record.id, candidates)
        print(f"stored {len(candidates)} candidates for {record.name} in {project.path}")
    print(f"{'bpm':>7}  {'salience':>8}  {'pace p':>6}  compatible")
    for c in candidates:
        print(f"{c.bpm:7.1f}  {c.salience:8.3f}  {c.pace_probability:6.2f}  {'yes' if c.compatible else 'no'}")
    if not candidates:
        print("no tempo candidates (no periodic onsets, or shorter than 4 s)")
    return 0


def _add_follow(sub):
    p = sub.add_parser("follow", help="follow a performance in the MIDI online (a file with --simulate, else the microphone)")
    p.add_argument("midi", help="a MIDI file")
    p.add_argument("audio", nargs="?", help="a recording to stream through the follower (with --simulate)")
    p.add_argument("--simulate", action="store_true",
                   help="stream AUDIO in real-time-sized chunks instead of listening to the microphone")
    p.add_argument("--json", metavar="POSITIONS.json",
                   help='write {"positions": [{"audio_time", "midi_time", "compute_ms"}, ...]}, one per chunk')
    p.add_argument("--chunk-ms", type=float, default=20.0, help="chunk length in ms (default 20)")
    p.add_argument("--reference", choices=["synth", "pianoroll"], default="synth",
                   help="MIDI reference features: FluidSynth rendering (default) or straight from the notes")
    p.add_argument("--soundfont", metavar="SF2", help="soundfont for --reference synth")
    p.add_argument("--device", help="input device (name or index) without --simulate")
    p.add_argument("--seconds", type=float, default=None, help="stop listening after this many seconds")
    p.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                   help="where in the MIDI the performance starts (default: the beginning, or found by listening)")
    p.add_argument("--no-wait", action="store_true",
                   help="follow from the first sample (default: wait through the room's noise for the first notes)")
    p.set_defaults(func=_run_follow)


def _run_follow(args) -> int:
    from engine.follow import FollowParams

    if not 5.0 <= args.chunk_ms <= 200.0:
        print("error: --chunk-ms must be between 5 and 200", file=sys.stderr)
        return 2
    params = FollowParams(reference=args.reference, soundfont=args.soundfont)
    if args.no_wait:
        params = replace(params, start_rise_db=None)
    if args.simulate:
        from engine.follow import describe_part_change, follow_file

        if not args.audio:
            print("error: --simulate needs AUDIO (the recording to stream)", file=sys.stderr)
            return 2
        trace = follow_file(args.midi, args.audio, params, chunk_s=args.chunk_ms / 1000.0, start_s=args.start)
        if args.json:
            Path(args.json).write_text(json.dumps(trace.to_json()) + "\n")
        n = len(trace.audio_time_s)
        print(f"{n} positions over {trace.audio_time_s[-1]:.2f} s of audio; MIDI position at the end "
              f"{trace.midi_time_s[-1]:.2f} s; compute {trace.compute_ms.mean():.2f} ms per "
              f"{args.chunk_ms:g} ms chunk (max {trace.compute_ms.max():.2f}); setup {trace.setup_s:.2f} s")
        if trace.performance_start_s is None:
            print("no performance heard: only the room's noise (or silence); --no-wait follows it anyway")
        elif trace.performance_start_s > 2 * trace.chunk_s:
            print(f"the performance starts {trace.performance_start_s:.2f} s in (waited until then)")
        for audio_s, left_out in trace.part_changes:
            print(f"from {audio_s:.1f} s: {describe_part_change(left_out)}")
        return 0
    return _follow_microphone(args, params)


def _follow_microphone(args, params) -> int:
    import threading

    from engine.follow import MicrophoneFollower, ScoreFollower, part_changes_json

    follower = ScoreFollower(args.midi, params, start_s=args.start)
    positions, done, heard = [], threading.Event(), threading.Event()

    def on_position(audio_s, midi_s):
        if follower.performance_start_s is not None and not heard.is_set():
            heard.set()
            print(f"heard the performance start at {follower.performance_start_s:.2f} s", flush=True)
        positions.append((audio_s, midi_s))
        if len(positions) % max(1, int(round(500 / args.chunk_ms))) == 0:
            print(f"{audio_s:8.2f} s  →  MIDI {midi_s:8.2f} s", flush=True)

    device = int(args.device) if args.device and args.device.isdigit() else args.device
    mic = MicrophoneFollower(follower, on_position, device=device, chunk_s=args.chunk_ms / 1000.0)
    mic.start()  # DeviceError (no microphone) → "error: ..." and exit 1
    print("listening (waiting for the first notes); Ctrl+C to stop", flush=True)
    try:
        done.wait(args.seconds)
    finally:
        mic.stop()
        if args.json:
            Path(args.json).write_text(json.dumps({"positions": [
                {"audio_time": round(a, 4), "midi_time": round(m, 4)} for a, m in positions],
                "performance_start": follower.performance_start_s,
                "part_changes": part_changes_json(follower.part_changes)}) + "\n")
    if mic.error is not None:
        raise mic.error
    return 0


def _int_at_least(minimum: int, name: str):
    """An argparse type: an integer >= ``minimum`` (below it is a mistake, not "the default");
    ``name`` is what argparse calls it in "invalid <name> value"."""
    def check(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    check.__name__ = name
    return check


_positive_int = _int_at_least(1, "positive integer")
_non_negative_int = _int_at_least(0, "non-negative integer")


def _add_match(sub):
    p = sub.add_parser("match", help="match a folder of MIDIs against a folder of recordings (which is which?)")
    p.add_argument("--midi", required=True, metavar="DIR", help="folder of MIDI files (searched recursively)")
    p.add_argument("--audio", required=True, metavar="DIR", help="folder of recordings (searched recursively)")
    p.add_argument("--out", metavar="MATCHES.csv", help="write midi,audio,confidence,gap per MIDI (audio empty: none)")
    p.add_argument("--scores", metavar="MATRIX.csv", help="write every pair's confidence (rows audio, columns MIDI)")
    p.add_argument("--gold", metavar="GOLD.csv", help="evaluate against gold pairs (midi,audio or the seed's matrix); "
                   "report and PNG figures go next to --out")
    p.add_argument("--project", metavar="DB", help="store files, alignments and match scores in this project (resumes)")
    p.add_argument("--scheduler", metavar="ADDR", help="run on a Dask cluster (tcp://host:port); default: local cores")
    p.add_argument("--run-dir", metavar="DIR", help="keep what is computed here, to resume (default: in the cache)")
    p.add_argument("--workers", type=_positive_int, metavar="N", help="local processes (default: all cores; 1: this process)")
    p.add_argument("--k-prune", type=_positive_int, metavar="K",
                   help="recordings kept per MIDI by the pruning stage (default: the one the calibration was fitted with)")
    p.add_argument("--k-confirm", type=_positive_int, metavar="K",
                   help="pairs per MIDI confirmed by full alignment (default: the one the calibration was fitted with)")
    p.add_argument("--embedding-k", type=_non_negative_int, default=0, metavar="K", help="first stage: recordings kept per MIDI by "
                   "the cross-modal embeddings (models/embed_*.onnx) before the chroma prune (default 0: no such stage)")
    p.add_argument("--embedding-score", choices=("summary", "set"), default="summary",
                   help="that stage's file score: mean snippet vectors (summary) or best-snippet similarities (set)")
    p.set_defaults(func=_run_match)


def _run_match(args) -> int:
    from engine.match import MatchParams, run_match

    params = MatchParams(k_prune=MatchParams.k_prune if args.k_prune is None else args.k_prune,
                         k_confirm=MatchParams.k_confirm if args.k_confirm is None else args.k_confirm,
                         embedding_k=args.embedding_k,
                         embedding_score=args.embedding_score)
    result = run_match(args.midi, args.audio, params, run_dir=args.run_dir, project=args.project,
                       scheduler=args.scheduler, n_workers=args.workers,
                       log=lambda line: print(f"error: {line}", file=sys.stderr, flush=True))
    if args.out:
        result.write_matches_csv(args.out)
    if args.scores:
        result.write_matrix_csv(args.scores)
    c, t = result.counts, result.timings
    print(f"{c['midi']} MIDIs, {c['audio']} recordings ({c['bad_files']} bad files skipped): "
          f"{int((result.predicted >= 0).sum())} matched, {int((result.predicted < 0).sum())} with none")
    print(f"pairs: prune {c['prune_pairs']}, coarse DTW {c['coarse_pairs']}, confirmed {c['confirm_pairs']} "
          f"({c['confirm_pairs_computed']} computed now); " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))
    if args.gold:
        from engine.evaluate import evaluate_match

        evaluation, written = evaluate_match(result, args.gold, Path(args.out).parent if args.out else Path("."))
        print(evaluation.report())
        print("wrote " + ", ".join(str(w) for w in written))
    return 0


# Sub-commands in the order `earworm --help` lists them. Add new ones here.
def _add_identify(sub):
    p = sub.add_parser("identify", help="which library piece (and composer) a recording is, or 'unknown'")
    p.add_argument("audio", help="a recording or clip (wav, flac, ogg, mp3)")
    p.add_argument("--library", required=True, metavar="DIR|PROJECT",
                   help="a folder of MIDI files (searched recursively; optional composers.csv: file,composer) "
                        "or a project database")
    p.add_argument("--top", type=_positive_int, default=5, help="how many pieces to list (default 5)")
    p.add_argument("--json", metavar="RESULT.json", help="also write the ranking and the decision as JSON")
    p.set_defaults(func=_run_identify)


def _run_identify(args) -> int:
    from engine import embed

    paths, composers = embed.library_paths(args.library)
    if not paths:
        print(f"error: {args.library}: no MIDI files in the library", file=sys.stderr)
        return 1
    # Bad or silent audio, or a missing model, fails here, before the library is read.
    query = embed.require_snippets(embed.recording_vectors(args.audio), args.audio)
    library = embed.build_library(paths, composers)
    for path, reason in library.bad_files:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    result = embed.identify_recording(args.audio, library, top_k=args.top, query=query)
    print(f"{args.audio}: {result.verdict()}; {result.n_snippets} snippets, "
          f"{count_noun(len(library), 'piece')} in the library")
    print(f"{'rank':>4}  {'score':>6}  {'votes':>5}  piece")
    for rank, piece in enumerate(result.pieces, 1):
        who = f"  ({piece.composer})" if piece.composer else ""
        print(f"{rank:4d}  {piece.score:6.3f}  {piece.votes:5d}  {piece.path}{who}")
    if result.composers:
        print("composers: " + ", ".join(f"{c} {s:.3f}" for c, s in result.composers[:3]))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=1))
    return 0


SUBCOMMANDS = [_add_gui, _add_align, _add_labels, _add_tempo, _add_follow, _add_match, _add_identify]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earworm", description="Earworm Studio: MIDI and audio side by side.")
    from engine import __version__

    parser.add_argument("--version", action="version", version=f"earworm {__version__}")
    sub = parser.add_subparsers(dest="command")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `earworm` opens the window on the demo
        args = parser.parse_args(["gui"])
    try:
        return int(args.func(args) or 0)
    except EarwormError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
