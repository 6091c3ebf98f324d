package gateway_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/zipgate/zipgate/internal/policy"
)

// chromium finds Debian's Chromium (apt-get install chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("skipping the browser test: no Chromium (apt-get install chromium fonts-noto-cjk)")
	return ""
}

// TestDownloadLinkInABrowser: a recipient opens the link in a real
// browser, types the password, and saves the file with the Japanese name.
func TestDownloadLinkInABrowser(t *testing.T) {
	exe := chromium(t)
	r := startLinks(t, localDomains)
	_, link := r.sendLinked(t, policy.Policy{})
	r.release(t)
	pw := passwordOf(t, byKind(r.hop.Messages())["password"][0].Data)

	downloads := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	suggested := make(chan string, 4)
	done := make(chan string, 4)
	// The download events come on the tab's session, where the behavior
	// is set.
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdpbrowser.EventDownloadWillBegin:
			suggested <- ev.SuggestedFilename
		case *cdpbrowser.EventDownloadProgress:
			if ev.State == cdpbrowser.DownloadProgressStateCompleted || ev.State == cdpbrowser.DownloadProgressStateCanceled {
				done <- string(ev.State)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	events := true
	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads, EventsEnabled: &events})
			return err
		}),
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	heading, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.CSS("form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("ul.files a")),
	)
	if err != nil {
		t.Fatalf("browser, after the password: %v", err)
	}
	listed, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("ul.files")))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("ul.files li:first-child a"))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(heading, "添付ファイルのダウンロード") || !strings.Contains(listed, pdfName) {
		t.Errorf("page: heading %q, files %q", heading, listed)
	}
	var name, state string
	select {
	case name = <-suggested:
	case <-ctx.Done():
		t.Fatal("the download did not begin")
	}
	select {
	case state = <-done:
	case <-ctx.Done():
		t.Fatal("the download did not end")
	}
	if name != pdfName || state != "completed" {
		t.Fatalf("download %q ended %s, want %q completed", name, state, pdfName)
	}
	got, err := os.ReadFile(filepath.Join(downloads, pdfName))
	if err != nil || !bytes.Equal(got, pdfBytes) {
		entries, _ := os.ReadDir(downloads)
		t.Fatalf("saved file: %d bytes, %v; the folder has %v", len(got), err, entries)
	}
}
