"""OTLP wire code: SDK spans encoded straight to protobuf bytes (:mod:`.encoding`),
requests decoded from the wire (:mod:`.decoding`), and OTLP's JSON form
(:mod:`.json_form`)."""
