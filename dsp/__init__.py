"""Pure DSP on numpy arrays: gain/pan laws, fades, meters, limiter.

No I/O, no globals, nothing imported from the rest of jackgen.
"""
