"""Time cost of the phone path's pure parts, per second of call audio.

One simulated call: 50 inbound Twilio ``media`` messages (20 ms of μ-law each) parsed,
decoded and resampled to 16 kHz by ``PhoneCall.receive``, and one second of agent
speech (22.05 kHz PCM16, espeak's rate) resampled to 8 kHz, μ-law encoded and cut into
20 ms ``media`` messages plus a mark by ``PhoneCall.speak``, plus the mark echo.
Wall time of one thread (an upper bound of the CPU cost on a shared machine);
it bounds how many concurrent calls one core can carry before any engine runs.

Usage: ``.venv/bin/python bench/phone_codec.py [--seconds 20]``
"""

from __future__ import annotations

import argparse
import base64
import json
import time

import numpy as np

from parley.audio.g711 import encode_ulaw
from parley.telephony.call import PhoneCall
from parley.telephony.twilio_wire import TwilioCodec

SID = "MZ" + "1" * 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="call seconds to simulate")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    caller = encode_ulaw((rng.normal(0, 3000, 8000)).astype("<i2").tobytes())
    inbound = [
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(i + 2),
                "streamSid": SID,
                "media": {
                    "track": "inbound",
                    "chunk": str(i + 1),
                    "timestamp": str(20 * i),
                    "payload": base64.b64encode(caller[160 * i : 160 * (i + 1)]).decode(),
                },
            }
        )
        for i in range(50)
    ]
    speech = (rng.normal(0, 3000, 22050)).astype("<i2").tobytes()
    start = {
        "event": "start",
        "streamSid": SID,
        "start": {"streamSid": SID, "callSid": "CA1", "accountSid": "AC1"},
    }
    call = PhoneCall(TwilioCodec())
    call.receive(json.dumps(start))
    in_s = out_s = 0.0
    for second in range(args.seconds):
        t0 = time.perf_counter()
        for message in inbound:
            call.receive(message)
        t1 = time.perf_counter()
        call.speak(speech, 22050, "a sentence", generation=1)
        mark = {"event": "mark", "streamSid": SID, "mark": {"name": f"1.{second + 1}"}}
        call.receive(json.dumps(mark))
        t2 = time.perf_counter()
        in_s += t1 - t0
        out_s += t2 - t1
    per_s = (in_s + out_s) / args.seconds
    print(f"inbound  {1e3 * in_s / args.seconds:.2f} ms per call-second (50 media messages)")
    print(f"outbound {1e3 * out_s / args.seconds:.2f} ms per call-second (speak + mark)")
    print(f"total    {1e3 * per_s:.2f} ms -> at most {1 / per_s:.0f} calls per core (codec only)")


if __name__ == "__main__":
    main()
