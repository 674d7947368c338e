#!/usr/bin/env python3
"""Parse nixl-rendered `vllm` command lines with vLLM 0.16.0's own CLI parsers.

    echo '[{"id": "a", "argv": ["vllm", "serve", "M", "--port", "8100"]}]' \
        | $NIXL_VLLM_VENV/bin/python check_args.py

stdin: a JSON list of {"id": ..., "argv": [...]}, argv a shell-split command that
starts with `vllm` (`vllm serve ...` or `vllm bench serve ...`), or of
{"id": ..., "line": "..."}, one line of a script as nixl renders it: it is split
as the shell would (shlex), leading `NAME=value` assignments and `nohup` are
dropped, and the command ends at its first redirection or control operator.
stdout: a JSON list of {"id": ..., "ok": true} or {"id": ..., "ok": false,
"error": "..."}; exit 0 if every command is accepted, 1 otherwise (2 on bad input).

The parser is built exactly as vllm/entrypoints/cli/main.py builds it (the same
CMD_MODULES, FlexibleArgumentParser, each subcommand's subparser_init) and each
argv is parsed with parser.parse_args(argv[1:]); argparse's error() is made to
raise instead of exiting. After parsing, what vLLM itself runs next that needs
neither a GPU nor the model's files is run too:
  * the subcommand's validate() (serve: validate_parsed_serve_args);
  * serve: EngineArgs.from_cli_args(args) (the dataclass __post_init__; its
    offline model-id-to-snapshot lookup is skipped: the model is not here), and
    --kv-transfer-config / --hf-overrides / --compilation-config etc. are already
    turned into their config types (KVTransferConfig, dict, ...) by the parser's
    own `type=` callables, so bad JSON or unknown KVTransferConfig fields fail in
    parsing; --hf-overrides that is not `{...}` is kept by vLLM's parser as a
    string (union_dict_and_str) and only fails when ModelConfig is built on the
    GPU host, so this script reports it as an error;
  * bench serve: the checks of vllm.benchmarks.serve.main that come before any
    network or tokenizer access are not reproduced (they need the server).
Platform: no GPU here, so before anything imports vLLM's CLI the current platform
is set to CpuPlatform (what `vllm bench` itself does when the platform is
unspecified: vllm/entrypoints/cli/main.py), by assigning
vllm.platforms.current_platform. Everything is imported once; all commands are
parsed in one process.
"""
import io
import re
import json
import os
import sys
import contextlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ParseError(Exception):
    pass


def build_parser():
    import argparse

    from vllm import platforms

    if platforms.current_platform.is_unspecified():
        from vllm.platforms.cpu import CpuPlatform

        platforms.current_platform = CpuPlatform()

    def error(self, message):
        raise ParseError(f"{self.prog}: error: {message}")

    argparse.ArgumentParser.error = error

    # as vllm/entrypoints/cli/main.py main()
    import importlib.metadata

    import vllm.entrypoints.cli.benchmark.main
    import vllm.entrypoints.cli.collect_env
    import vllm.entrypoints.cli.openai
    import vllm.entrypoints.cli.run_batch
    import vllm.entrypoints.cli.serve
    from vllm.entrypoints.utils import VLLM_SUBCMD_PARSER_EPILOG, cli_env_setup
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    CMD_MODULES = [
        vllm.entrypoints.cli.openai,
        vllm.entrypoints.cli.serve,
        vllm.entrypoints.cli.benchmark.main,
        vllm.entrypoints.cli.collect_env,
        vllm.entrypoints.cli.run_batch,
    ]
    cli_env_setup()
    parser = FlexibleArgumentParser(
        prog="vllm",
        description="vLLM CLI",
        epilog=VLLM_SUBCMD_PARSER_EPILOG.format(subcmd="[subcommand]"),
    )
    parser.add_argument("-v", "--version", action="version", version=importlib.metadata.version("vllm"))
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    cmds = {}
    for cmd_module in CMD_MODULES:
        for cmd in cmd_module.cmd_init():
            cmd.subparser_init(subparsers).set_defaults(dispatch_function=cmd.cmd)
            cmds[cmd.name] = cmd
    # EngineArgs.__post_init__ maps the model id to a local snapshot when
    # HF_HUB_OFFLINE is set; the model's files are not here, so keep the id.
    import vllm.engine.arg_utils as arg_utils

    arg_utils.get_model_path = lambda model, revision=None: model
    return parser, cmds


def check(parser, cmds, argv):
    if not argv or os.path.basename(argv[0]) != "vllm":
        raise ParseError(f"not a vllm command: {argv[:1]}")
    sub = argv[1:3]
    if not (sub[:1] == ["serve"] or sub == ["bench", "serve"]):
        raise ParseError(f"only `vllm serve` and `vllm bench serve` are checked, got: vllm {' '.join(sub)}")
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv[1:])
            if args.subparser in cmds:
                cmds[args.subparser].validate(args)
            if args.subparser == "serve":
                from vllm.engine.arg_utils import AsyncEngineArgs

                if getattr(args, "model_tag", None) is not None:
                    args.model = args.model_tag
                engine_args = AsyncEngineArgs.from_cli_args(args)
                # the parser leaves a value that is not `{...}` as a plain string;
                # ModelConfig (hf_overrides: dict | Callable) then rejects it on the
                # GPU host, after the model's config is loaded: report it here
                if isinstance(engine_args.hf_overrides, str):
                    raise ParseError(
                        "argument --hf-overrides: not a JSON object: "
                        f"{engine_args.hf_overrides!r} (vLLM keeps it as a string and "
                        "fails later, when it builds ModelConfig)"
                    )
    except SystemExit as e:  # argparse paths that exit without error()
        msg = (err.getvalue() or out.getvalue()).strip()
        raise ParseError(msg or f"exit {e.code}")


ENDS = {">", ">>", "&", "2>&1", "|", ";", "&&", "||", "<"}


def argv_of_line(line):
    """The argv a shell would run for one script line (see the module's docstring)."""
    import shlex

    words = shlex.split(line)
    while words and (words[0] == "nohup" or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0])):
        words.pop(0)
    for i, w in enumerate(words):
        if w in ENDS:
            return words[:i]
    return words


def main():
    try:
        items = json.load(sys.stdin)
        assert isinstance(items, list) and all(isinstance(i, dict) for i in items)
        for i in items:
            if "argv" not in i:
                i["argv"] = argv_of_line(i["line"])
        assert all(isinstance(i.get("argv"), list) for i in items)
    except (ValueError, AssertionError, KeyError):
        print('check_args.py: stdin must be a JSON list of {"id": ..., "argv": [...]} or {"id": ..., "line": "..."}', file=sys.stderr)
        return 2
    with contextlib.redirect_stdout(sys.stderr):  # vLLM's import-time chatter
        parser, cmds = build_parser()
    results, ok = [], True
    for item in items:
        try:
            check(parser, cmds, [str(a) for a in item["argv"]])
            results.append({"id": item.get("id"), "ok": True})
        except Exception as e:  # ParseError, ValueError from validate(), pydantic ValidationError...
            ok = False
            msg = re.sub(r" at 0x[0-9a-f]+>", ">", str(e).strip() or type(e).__name__)  # as vLLM's sanitize_message
            results.append({"id": item.get("id"), "ok": False, "error": f"{type(e).__name__}: {msg}"
                            if not isinstance(e, ParseError) else msg})
    json.dump(results, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
