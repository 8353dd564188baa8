// Package architecture holds the test that keeps the layers apart: the
// engine core imports no backend, no gRPC and no generated code, and the
// gRPC service knows no backend. It has no code of its own.
package architecture
