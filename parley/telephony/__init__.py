"""Phone calls: pure carrier wire codecs, the sans-I/O call state machine, webhook
answers, signatures and the carriers' REST clients.

Nothing here does socket I/O except the REST clients (``twilio_rest``); the stream's
socket loop lives in a channel module and drives ``call.PhoneCall``.
"""
