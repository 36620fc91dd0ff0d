/*
 * http.c - one HTTP/1.x request head, parsed from a bounded buffer (RFC 9112
 * section 2-5, strictly: no line folding, no whitespace before a colon, no
 * bare CR, no NUL). Lines may end in CRLF or a lone LF, as RFC 9112 allows a
 * recipient to accept.
 */
#include <string.h>
#include <strings.h>

#include "http.h"

/* RFC 9110 tchar: the bytes of a method or a header name. */
static bool
http_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static enum http_verdict
http_fail(struct http_request *r, int status, const char *why)
{
	r->status = status;
	r->reason = why;
	return HTTP_ERROR;
}

/* The line starting at `at`: its length without CRLF/LF in *n and where the
 * next begins in *next. false when no LF has arrived yet. */
static bool
http_line(const char *buf, size_t at, size_t len, size_t *n, size_t *next)
{
	const char *lf = memchr(buf + at, '\n', len - at);
	size_t end;

	if (lf == NULL)
		return false;
	end = (size_t)(lf - buf);
	*next = end + 1;
	if (end > at && buf[end - 1] == '\r')
		end--;
	*n = end - at;
	return true;
}

/* "HTTP/1.1" -> 0 and the minor; another version -> 505; junk -> 400. */
static int
http_version(const char *s, size_t n, int *minor)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' || s[5] < '0' ||
	    s[5] > '9' || s[7] < '0' || s[7] > '9')
		return 400;
	if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
		return 505;
	*minor = s[7] - '0';
	return 0;
}

/* The target: origin-form, or absolute-form (which a server must accept,
 * RFC 9112 3.2.2: its path is what counts), visible ASCII only. 0, 400 or
 * 414. */
static int
http_target(const char *s, size_t n, struct http_request *r)
{
	const char *q;

	if (n > HTTP_MAX_TARGET)
		return 414;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 400;
	if (n > 7 && (strncasecmp(s, "http://", 7) == 0 ||
	              (n > 8 && strncasecmp(s, "https://", 8) == 0))) {
		const char *auth = memchr(s, '/', n) + 2;
		const char *slash = memchr(auth, '/', n - (size_t)(auth - s));
		if (slash == auth)
			return 400; /* no authority */
		if (slash == NULL) {
			if (memchr(auth, '?', n - (size_t)(auth - s)) != NULL)
				return 400; /* a query, no path */
			/* "http://host": the root, as the '/' before host
			 * (the path always points into the head) */
			r->path = auth - 1;
			r->path_len = 1;
			return 0;
		}
		n -= (size_t)(slash - s);
		s = slash;
	}
	if (n == 0 || s[0] != '/')
		return 400;
	q = memchr(s, '?', n);
	r->path = s;
	r->path_len = q ? (size_t)(q - s) : n;
	return 0;
}

/* "METHOD SP TARGET SP VERSION", each part checked in the order that gives
 * the most useful status: syntax, version, the method (OPTIONS * is 405,
 * not a bad target), then the target. */
static enum http_verdict
http_request_line(const char *s, size_t n, struct http_request *r)
{
	const char *sp1, *sp2;
	size_t m, t;
	int st;

	for (m = 0; m < n && http_tchar((unsigned char)s[m]); m++)
		;
	if (m == 0 || m == n || s[m] != ' ')
		return http_fail(r, 400, "malformed request line");
	if (m == 3 && memcmp(s, "GET", 3) == 0)
		r->method = HTTP_GET;
	else if (m == 4 && memcmp(s, "HEAD", 4) == 0)
		r->method = HTTP_HEAD;
	sp1 = s + m;
	sp2 = memchr(sp1 + 1, ' ', n - m - 1);
	if (sp2 == NULL)
		return http_fail(r, 400, "malformed request line");
	t = (size_t)(sp2 - sp1 - 1);
	if ((st = http_version(sp2 + 1, n - (size_t)(sp2 + 1 - s),
	                       &r->minor)) != 0)
		return http_fail(r, st,
		                 st == 505 ? "unsupported HTTP version"
		                           : "malformed HTTP version");
	if (r->method == HTTP_OTHER)
		return http_fail(r, 405, "method not allowed");
	if ((st = http_target(sp1 + 1, t, r)) != 0)
		return http_fail(r, st,
		                 st == 414 ? "request target too long"
		                           : "malformed request target");
	return HTTP_OK;
}

/* One "name: value" line. 1 when it is a Host header, 0 when another, or
 * -1 when malformed. */
static int
http_header(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && http_tchar((unsigned char)s[i]); i++)
		;
	if (i == 0 || i == n || s[i] != ':')
		return -1;
	for (size_t k = i + 1; k < n; k++) {
		unsigned char c = (unsigned char)s[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	return i == 4 && strncasecmp(s, "host", 4) == 0;
}

/* The head ran into HTTP_MAX_HEAD before its blank line. */
static enum http_verdict
http_too_long(const char *buf, size_t len, bool in_first_line,
              struct http_request *r)
{
	const char *sp1, *sp2;

	if (!in_first_line)
		return http_fail(r, 431, "request head too large");
	sp1 = memchr(buf, ' ', len);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - buf)) : NULL;
	if (sp1 != NULL &&
	    (size_t)((sp2 ? sp2 : buf + len) - sp1 - 1) > HTTP_MAX_TARGET)
		return http_fail(r, 414, "request target too long");
	return http_fail(r, 400, "request line too long");
}

/* Junk before the method's end (a TLS hello, a binary probe) and a long
 * target are refused as soon as they are seen, not at the head's limit. */
static enum http_verdict
http_partial_first_line(const char *buf, size_t len, struct http_request *r)
{
	const char *sp1 = memchr(buf, ' ', len);
	size_t t, m = sp1 ? (size_t)(sp1 - buf) : len;

	for (size_t i = 0; i < m; i++)
		if (!http_tchar((unsigned char)buf[i]))
			return http_fail(r, 400, "malformed request line");
	if (sp1 == NULL)
		return HTTP_MORE;
	t = len - (size_t)(sp1 + 1 - buf);
	if (memchr(sp1 + 1, ' ', t) == NULL && t > HTTP_MAX_TARGET)
		return http_fail(r, 414, "request target too long");
	return HTTP_MORE;
}

/* A line may hold neither NUL nor a CR of its own. */
static bool
http_line_clean(const char *s, size_t n)
{
	return memchr(s, '\0', n) == NULL && memchr(s, '\r', n) == NULL;
}

enum http_verdict
http_parse(const char *buf, size_t len, struct http_request *r)
{
	size_t at = 0, n, next, hosts = 0;
	int h;

	memset(r, 0, sizeof *r);
	if (len > HTTP_MAX_HEAD)
		len = HTTP_MAX_HEAD;
	for (;;) {
		if (!http_line(buf, at, len, &n, &next)) {
			if (len == HTTP_MAX_HEAD)
				return http_too_long(buf, len, at == 0, r);
			return at == 0 ? http_partial_first_line(buf, len, r)
			               : HTTP_MORE;
		}
		if (!http_line_clean(buf + at, n))
			return http_fail(r, 400, "NUL or bare CR in the head");
		if (at == 0) {
			if (http_request_line(buf, n, r) != HTTP_OK)
				return HTTP_ERROR;
		} else if (n == 0) {
			break;
		} else if (buf[at] == ' ' || buf[at] == '\t') {
			return http_fail(r, 400, "folded header line");
		} else if ((h = http_header(buf + at, n)) < 0) {
			return http_fail(r, 400, "malformed header line");
		} else {
			hosts += (size_t)h;
			if (++r->nheaders > HTTP_MAX_HEADERS)
				return http_fail(r, 431, "too many headers");
		}
		at = next;
	}
	if (hosts > 1 || (r->minor == 1 && hosts == 0))
		return http_fail(r, 400, "HTTP/1.1 needs exactly one Host");
	r->head_len = next;
	return HTTP_OK;
}

bool
http_path_is(const struct http_request *r, const char *path)
{
	return r->path_len == strlen(path) &&
	       memcmp(r->path, path, r->path_len) == 0;
}

const char *
http_status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}
