package gateway

import "testing"

func TestPostfixQueueID(t *testing.T) {
	for received, want := range map[string]string{
		"from mua (mua [192.0.2.7]) by pfx.example.jp (Postfix) with ESMTPSA id 4dK9xY2mZqz1; Fri, 27 Nov 2026": "4dK9xY2mZqz1",
		"by pfx.example.jp (Postfix, from userid 1000) id 4dKB0c1Xyz; Fri, 27 Nov 2026":                         "4dKB0c1Xyz",
		"from mx.example.net by other.example (Exim 4.96) with esmtp id 1tAbc-000123-Xy":                        "",
		"": "",
	} {
		if got := postfixQueueID(received); got != want {
			t.Errorf("%q: got %q, want %q", received, got, want)
		}
	}
}
