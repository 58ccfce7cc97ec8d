package main

import (
	"errors"
	"net/http"

	"github.com/gatehouse/gatehouse/config"
)

// reloadNow serves POST /-/reload (an admin write: the token is checked before it runs).
// It loads the configuration file and every file it names now, the way a change on disk
// would, and answers with the version in force: 200 when the load succeeded, 422 with
// every problem when it was rejected (the previous configuration stays). The problems
// are the load's messages, which name keys, files and lines but never a file's content.
func (s *server) reloadNow(w http.ResponseWriter, _ *http.Request) {
	r := s.reloader.Load()
	if r == nil {
		if s.flags.config != "" { // starting: the watcher is not set up yet
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "starting: try again"})
			return
		}
		writeJSON(w, http.StatusConflict, map[string]string{"error": "no configuration file to reload: the embedded demo configuration is running"})
		return
	}
	s.log.Info("reload requested on the admin port")
	err := r.Reload()
	version := ""
	if snap := s.store.Current(); snap != nil {
		version = snap.Version
	}
	if err == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded", "version": version})
		return
	}
	var problems []string
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			problems = append(problems, e.Error())
		}
	} else {
		problems = []string{err.Error()}
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"error":    "configuration rejected; the previous one stays in force",
		"version":  version,
		"problems": problems,
	})
}
