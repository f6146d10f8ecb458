package emulate

import (
	"crypto/subtle"
	"net/http"
)

// BasicAuth checks r's HTTP Basic credentials against user and pass as a
// device with Basic auth does. On a mismatch it answers 401 with a Basic
// challenge for realm and returns false; the handler then stops.
func BasicAuth(w http.ResponseWriter, r *http.Request, user, pass, realm string) bool {
	u, p, ok := r.BasicAuth()
	if ok && subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1 && subtle.ConstantTimeCompare([]byte(p), []byte(pass)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
	return false
}
