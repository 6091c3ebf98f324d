package web

import "html/template"

// linkPages is the recipients' page of a download link ("link"), in the
// look of the other pages: Japanese first, English under it, inline CSS,
// no script. Files are plain links: the answer is a download, never a
// page.
var linkPages = template.Must(template.New("").Parse(pageText + linkText))

const linkText = `
{{define "link"}}{{template "head" "zipgate — ファイルのダウンロード / Download"}}<h1>添付ファイルのダウンロード<span class="en" lang="en">Download the attachments</span></h1>
{{with .Msg}}<div class="card msg" role="alert">
<p>{{.Ja}}<span class="en" lang="en">{{.En}}</span></p>
</div>
{{end}}{{if .Gone.Ja}}<div class="card state canceled" id="gone">
<p>{{.Gone.Ja}}</p>
<p class="en" lang="en">{{.Gone.En}}</p>
</div>
{{else if .Opened}}<div class="card state done">
<p>ファイルを選んでダウンロードしてください。</p>
<p class="en" lang="en">Choose a file to download.</p>
</div>
<div class="card">
<ul class="files">{{range .Files}}<li><a href="{{.Href}}" download>{{.Name}}</a> <span class="size">({{.Size}})</span></li>{{end}}</ul>
<p class="after"><a href="{{.Links.Zip}}" download>すべてを 1 つの ZIP で / All as one zip</a> <span class="size">({{.ZipName}}, {{.ZipSize}})</span></p>
<p class="note">{{if .ZipPass}}ZIP のパスワード: <code>{{.ZipPass}}</code><span class="en" lang="en">The zip's password: <code>{{.ZipPass}}</code></span>{{else}}ZIP はこのページと同じパスワードで開けます（AES-256）。<span class="en" lang="en">The zip opens with this page's password (AES-256).</span>{{end}}</p>
</div>
{{else if .OTP}}<div class="card">
{{if .CodeOpen}}<form method="post" action="{{.Links.Open}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="code">メールで届いた確認コード / The code from the mail</label>
<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="12" required>
<button class="approve" type="submit">開く / Open</button>
</form>
{{end}}<form method="post" action="{{.Links.Code}}" class="after">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{if .AskAddress}}<label for="address">このメールを受け取ったあなたのアドレス / Your address this mail went to</label>
<input id="address" name="address" type="email" autocomplete="email" maxlength="254" required>
{{end}}<button class="release" type="submit">確認コードを送る / Send me a code</button>
{{if .CodeTo}}<span class="size">→ {{.CodeTo}}</span>{{end}}
</form>
</div>
{{else}}<div class="card">
<form method="post" action="{{.Links.Open}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="password">パスワード（別のメールでお送りしています） / Password (sent in a separate mail)</label>
<input id="password" name="password" type="password" autocomplete="off" maxlength="200" required>
<button class="approve" type="submit">開く / Open</button>
</form>
</div>
{{end}}<div class="card">
<dl>
<dt>差出人 / From</dt>
<dd>{{.From}}</dd>
<dt>件名 / Subject</dt>
<dd>{{if .Subject}}{{.Subject}}{{else}}（件名なし / no subject）{{end}}</dd>
{{- if not .Gone.Ja}}
<dt>ファイル / Files</dt>
<dd><ul>{{range .Files}}<li>{{.Name}} <span class="size">({{.Size}})</span></li>{{end}}</ul></dd>
<dt>期限 / Until</dt>
<dd>{{.Expires}}</dd>
{{- if .Left}}
<dt>残りのダウンロード回数 / Downloads left</dt>
<dd>{{.Left}}</dd>
{{- end}}
{{- end}}
</dl>
</div>
{{template "foot"}}{{end}}
`
