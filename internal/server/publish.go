package server

import (
	"context"
	"net/http"
)

// handlePublish is POST /v1/channels/{channel}/messages: body one JSON
// value (a string is sent as is) -> {"receivers": N}.
func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) error {
	channel := r.PathValue("channel")
	if err := validateChannel(channel); err != nil {
		return err
	}
	v, err := decodeBody(s, w, r, decodeItem)
	if err != nil {
		return err
	}
	var n int64
	err = s.write(r, func(ctx context.Context) (err error) {
		n, err = s.client.Publish(ctx, channel, v)
		return err
	})
	if err != nil {
		return afterWrite(err)
	}
	s.reply(w, r, http.StatusOK, map[string]int64{"receivers": n}, "channel", channel)
	return nil
}
