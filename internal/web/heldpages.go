package web

import "html/template"

// heldPages are the sender's page of a held message ("held") and the
// approver's ("approve"), in the look of the password page: Japanese
// first, English under it, inline CSS, no script. The approver's page
// shows what was sent before the buttons that decide on it, and links
// nowhere but to itself.
var heldPages = template.Must(template.New("").Parse(pageText + heldText))

const heldText = `
{{define "heldstate"}}<h1>{{.Head.Ja}}<span class="en" lang="en">{{.Head.En}}</span></h1>
{{with .Msg}}<div class="card msg" role="alert">
<p>{{.Ja}}<span class="en" lang="en">{{.En}}</span></p>
</div>
{{end}}<div class="card state {{.Class}}">
<p>{{.State.Ja}}</p>
<p class="en" lang="en">{{.State.En}}</p>
{{- if .Why}}
<ul class="why">{{range .Why}}<li>{{.Ja}}<span class="en" lang="en">{{.En}}</span></li>{{end}}</ul>
{{- end}}
{{- if .Said}}
<p class="said"><span class="label">却下の理由 / Reason given</span>{{.Said}}</p>
{{- end}}
</div>
{{end}}

{{define "helddetails"}}<div class="card">
<dl>
{{- if .From}}
<dt>送信者 / From</dt>
<dd>{{.From}}</dd>
{{- end}}
<dt>件名 / Subject</dt>
<dd>{{if .Subject}}{{.Subject}}{{else}}（件名なし / no subject）{{end}}</dd>
<dt>宛先 / Recipients</dt>
<dd><ul>{{range .Rcpts}}<li>{{.}}</li>{{end}}</ul></dd>
<dt>添付ファイル / Attachments</dt>
<dd>{{if .Files}}<ul>{{range .Files}}<li>{{.Name}} <span class="size">({{.Size}})</span></li>{{end}}</ul>{{else}}なし / none{{end}}</dd>
<dt>受付日時 / Received</dt>
<dd>{{.Received}}</dd>
{{- if .Until}}
<dt>保留期限 / Held until</dt>
<dd>{{.Until}}</dd>
{{- end}}
{{- if .Deadline}}
<dt>決定の期限 / Decide by</dt>
<dd>{{.Deadline}}</dd>
{{- end}}
</dl>
</div>
{{end}}

{{define "heldlink"}}{{if .Links.Page}}<p><a href="{{.Links.Page}}">最新の状態を見る<span class="en" lang="en">Show the current status</span></a></p>
{{end}}{{end}}

{{define "held"}}{{template "head" "zipgate — 送信保留 / Held mail"}}{{template "heldstate" .}}
{{- if or .CanCancel .CanSend}}
<div class="actions">
{{- if .CanCancel}}
<form method="post" action="{{.Links.Cancel}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><button class="cancel" type="submit">送信を取り消す / Cancel</button></form>
{{- end}}
{{- if .CanSend}}
<form method="post" action="{{.Links.Send}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><button class="release" type="submit">今すぐ送る / Send now</button></form>
{{- end}}
</div>
{{- with .SendNote}}
<p class="note">{{.Ja}}
<span class="en" lang="en">{{.En}}</span></p>
{{- end}}
{{- end}}
{{template "helddetails" .}}{{template "heldlink" .}}{{template "foot"}}{{end}}

{{define "approve"}}{{template "head" "zipgate — 承認依頼 / Approval request"}}{{template "heldstate" .}}{{template "helddetails" .}}
{{- if .CanDecide}}
<div class="card">
<div class="actions">
<form method="post" action="{{.Links.Approve}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><button class="approve" type="submit">承認する / Approve</button></form>
</div>
<p class="note">承認すると、ほかに待っているものがなければ、このメールはすぐに送信されます。
<span class="en" lang="en">Once you approve, the mail leaves as soon as nothing else holds it.</span></p>
<form method="post" action="{{.Links.Reject}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="reason">却下の理由（任意、{{.MaxReason}} 文字まで。送信者に伝えられます）<span class="en" lang="en">Reason for rejecting (optional, up to {{.MaxReason}} characters; the sender is told)</span></label>
<textarea id="reason" name="reason" maxlength="{{.MaxReason}}" rows="3">{{.Reason}}</textarea>
<div class="actions after"><button class="cancel" type="submit">却下する / Reject</button></div>
</form>
<p class="note">却下すると、このメールは送信されません。
<span class="en" lang="en">If you reject it, the mail is not sent.</span></p>
</div>
{{- end}}
{{template "heldlink" .}}{{template "foot"}}{{end}}
`
