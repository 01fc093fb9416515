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
from pathlib import Path

from engine.errors import EarwormError


def _add_gui(sub):
    p = sub.add_parser("gui", help="open the window (the bundled demo pair if no files)")
    p.add_argument("midi", nargs="?", help="a MIDI file")
    p.add_argument("audio", nargs="?", help="a recording (wav, flac, ogg, mp3)")
    p.add_argument("--screenshot", metavar="PNG", help="render offscreen to PNG once the alignment is drawn, then exit")
    p.add_argument("--project", metavar="DB", help="a project database to open")
    p.set_defaults(func=_run_gui)


def _run_gui(args) -> int:
    # Imported here so that the headless commands never load Qt.
    from gui.app import run_app

    return run_app(midi=args.midi, audio=args.audio, screenshot=args.screenshot, project=getattr(args, "project", None))


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


# Sub-commands in the order `earworm --help` lists them. Add new ones here.
SUBCOMMANDS = [_add_gui, _add_align, _add_labels]


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
