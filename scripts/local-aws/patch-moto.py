"""Make moto's SQS FIFO group lock hold between concurrent receives.

SQS FIFO never hands out a message of a group that has a message in flight
to any consumer until that message is deleted or visible again (SQS
Developer Guide, "FIFO queue delivery logic"). moto 5.2.5's
receive_message breaks this two ways when several consumers poll at once:
it takes its set of busy groups once, when a receive starts, and checks
every later pass of a waiting long poll against that stale set; and
concurrent receives (moto serves each request on its own thread) scan the
queue at the same time, each against a set taken before the other's take.
Either way a second consumer gets a busy group's next message, and two
consumers work one conversation at once, out of order.

This patch makes each pass over the queue re-read the busy groups and
runs passes one at a time (a lock around the scan only, not around a long
poll's wait); messages of one group within one pass still come out
together, as on SQS. ports/tests/conformance_aws.rs
(`a_waiting_long_poll_does_not_hand_out_a_busy_group`) fails on a server
without it. Idempotent; exits non-zero when the code it patches is not
there (another moto version), so the patch is looked at again.
"""
import pathlib
import sys

import moto.sqs.models as models

path = pathlib.Path(models.__file__)
src = path.read_text()
MARKER = "# switchyard: one pass at a time, against the busy groups of now"
if MARKER in src:
    sys.exit(0)


def fail(what):
    sys.exit(f"patch-moto: {what} not found in {path}")


IMPORT = "from threading import Condition\n"
if src.count(IMPORT) != 1:
    fail("the threading import")
src = src.replace(IMPORT, IMPORT + '_SWITCHYARD_PASS_LOCK = __import__("threading").Lock()\n')

SNAPSHOT = (
    "        polling_end = unix_time() + wait_seconds_timeout\n"
    "        currently_pending_groups = deepcopy(queue.pending_message_groups)\n"
)
if src.count(SNAPSHOT) != 1:
    fail("the busy-group snapshot")
src = src.replace(SNAPSHOT, "        polling_end = unix_time() + wait_seconds_timeout\n")

lines = src.split("\n")
start = lines.index("            for message in queue.messages:")
end = lines.index("            for message in messages_to_dlq:", start)
scan = ["    " + line if line else line for line in lines[start:end]]
while scan and not scan[-1].strip():
    scan.pop()
lines[start:end] = [
    "            " + MARKER,
    "            with _SWITCHYARD_PASS_LOCK:",
    "                currently_pending_groups = deepcopy(queue.pending_message_groups)",
    *scan,
    "",
]
path.write_text("\n".join(lines))
for cached in path.parent.glob("__pycache__/models.*.pyc"):
    cached.unlink()
print(f"patch-moto: patched {path}", file=sys.stderr)
