"""What browsers get, shared by the browser-facing sinks of :mod:`ttstream.sinks` and by
:mod:`ttstream.redis` (both import it; it imports neither):

- :mod:`.items`: the JSON description of a stream item (``item_metadata``,
  ``strict_json``);
- :mod:`.frames`: the Server-Sent Events frames and the ASGI plumbing of both relays,
  and the browser module (``static/ttstream.js``, :data:`.frames.BROWSER_MODULE`);
- :mod:`.viewers`: viewer tokens and the one check both relays run.

The layers are drawn in ``docs/design.md``; the shapes in ``docs/live-previews.md``.
"""
