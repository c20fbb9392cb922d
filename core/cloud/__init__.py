"""The knowledge cloud: institutions publish task fingerprints with a card and what they measured when they borrowed
something (experiences); others rank the cloud's tasks against their own fingerprint, on the server (``query``: the
query fingerprint is sent) or locally after ``pull`` (only the cloud's fingerprints travel, to you).

One concept per module: ``schema`` (tables), ``database`` (engines, migrations), ``tokens`` (API tokens),
``records`` (what clients send, checked), ``service`` (every read and write, each write with its audit entry),
``ranking`` (the local catalogue's maths over the cloud's tasks), ``bodylimit`` (request size cap), ``api`` (the
HTTP JSON API), ``client`` (its Python client), ``snapshot`` (pull into the catalogue format), ``output`` (text for
terminals and CSV files) and ``cli`` (``python -m core cloud ...``).
"""
