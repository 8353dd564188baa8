// Package architecture holds the tests that keep the layers apart: the
// engine core imports no backend, no gRPC, no generated code and no
// metrics or tracing library (telemetry follows it through
// observe.Observer), the gRPC service knows no backend, neither the
// backends nor the service import telemetry, the Spark and streaming
// backends meet only through the imports listed in crossings, nothing
// execd is built from imports the Kafka test broker, and each conversion
// listed in oneHomes is written in one file. It has no code of its own.
package architecture
