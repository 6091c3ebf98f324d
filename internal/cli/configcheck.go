package cli

import (
	"time"

	"github.com/zipgate/zipgate/internal/config"
	"github.com/zipgate/zipgate/internal/notice"
)

// checkTemplates loads the notice templates as serve does and renders
// each with sample data, so that a template that does not parse, or names
// a field that does not exist, shows in configtest and not in a mail.
func checkTemplates(cfg config.Config) []string {
	var problems []string
	now := time.Now()
	files := []notice.File{{Name: "見積書.pdf", Size: 123456}}
	if cfg.Notice.Text != "" {
		t, err := notice.Load(notice.Options{BodyText: cfg.Notice.Text})
		if err == nil {
			_, err = t.Body(notice.BodyData{ZipName: "attachments_20261127.zip", Files: files})
		}
		if err != nil {
			problems = append(problems, "notice.text: "+err.Error())
		}
	}
	if cfg.Notice.TemplateDir != "" {
		t, err := notice.Load(notice.Options{Dir: cfg.Notice.TemplateDir, Charset: cfg.Notice.Charset})
		if err != nil {
			return append(problems, "notice.template_dir: "+err.Error())
		}
		data := notice.Data{Subject: "見積書", ZipName: "attachments_20261127.zip", Files: files,
			Rcpts: []string{"hanako@example.com"}, Password: "sample", Sent: now, Due: now.Add(10 * time.Minute),
			When: now, Link: cfg.Web.BaseURL + "/s/sample", Reason: "sample"}
		h := notice.Header{ID: "sample", Hostname: cfg.SMTP.Hostname, From: "postmaster@example.jp",
			To: "taro@example.jp", Subject: "sample", Kind: "notice", Date: now}
		// Every language and every password_to: a mistake may hide in a
		// section only one of them shows.
		seen := map[string]bool{}
		data.Sender, data.Until, data.Expires, data.Approvers, data.Visible = "taro@example.jp", now, now, "boss@example.jp", 12
		data.Reasons = []string{"hold", "approval", "guard"}
		for _, name := range notice.MailTemplates() {
			for _, data.Outcome = range []string{"sent", "canceled", "rejected", "expired", "failed"} {
				for _, lang := range []string{notice.Japanese, notice.English, notice.Both} {
					for _, to := range []string{"recipient", "sender", "manual"} {
						data.PasswordTo = to
						data.SetLanguage(lang)
						if _, err := t.Mail(name, h, data); err != nil && !seen[name] {
							seen[name] = true
							problems = append(problems, "notice.template_dir: "+err.Error()+" with sample data")
						}
					}
				}
			}
		}
	}
	return problems
}
