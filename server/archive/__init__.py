"""Archive of the live camera stream: timestamped segments and time-range exports.

The H.264 the appliance sends is kept exactly as received. ``tap`` takes the encoded
frames out of aiortc's receiver, ``segments`` remuxes them into MPEG-TS files of about
ten seconds that each start with an IDR, and ``range`` stitches the segments that
overlap a requested interval into one MP4, cut at keyframes. Nothing here decodes or
encodes video (except ``range.reencode_range``, the benchmark's baseline).
"""
