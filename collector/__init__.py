"""The event collector: Segment's Tracking API over HTTP, published to Pub/Sub
(`python -m collector`; the app is `collector.app`)."""

import os

# gRPC's EventEngine client transport (the default of the grpcio this project locks, 1.85)
# costs the collector ~20% more CPU per Publish RPC than the POSIX transport before it
# (bench.collector.publish, 4 RPCs in flight, alternating runs: 0.74-0.86 against 0.96-1.10
# us per event at 230 messages per RPC; bench/README.md). gRPC reads GRPC_EXPERIMENTS once,
# when its core is imported, so this runs before any collector module imports grpc; a value
# set in the environment wins.
os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_client")
