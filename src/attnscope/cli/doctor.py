"""``attnscope doctor``: the device, dtype, memory and stash budget a capture will use here."""

from __future__ import annotations

import argparse

from attnscope.cli import common


def add(commands: argparse._SubParsersAction) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="print the device, dtype, memory and stash budget attnscope will use on this machine",
        description="What --device and --dtype resolve to here, the accelerator and host memory, the budget "
        "of the queries/keys stash, and the library versions. Loads no model.",
    )
    common.add_device_options(doctor)
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from attnscope.models.devices import describe_machine
    from attnscope.render.json import doctor_json
    from attnscope.render.tables import doctor_text

    device = common.check_device(args.device)
    return common.output(args, doctor_json(describe_machine(device, args.dtype)), doctor_text)
