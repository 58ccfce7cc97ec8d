package telemetry

import (
	"io"
	"log/slog"
)

// NewLogger returns a JSON logger to w whose level can change at runtime through level.
func NewLogger(w io.Writer, level *slog.LevelVar) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
