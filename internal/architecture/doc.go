// Package architecture holds the test that keeps the layers apart: the
// engine core imports no backend, no gRPC, no generated code and no
// metrics or tracing library (telemetry follows it through
// observe.Observer), the gRPC service knows no backend, and neither the
// backends nor the service import telemetry. It has no code of its own.
package architecture
