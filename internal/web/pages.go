package web

import "html/template"

// pages are the sender page ("job") and the short answers ("simple"):
// Japanese first, English under it; inline CSS, no script, nothing
// loaded from elsewhere (the CSP forbids it anyway). "head" takes the
// page title; without one it is the password page's. The pages of held
// messages are in heldpages.go.
var pages = template.Must(template.New("").Parse(pageText))

// pageText is shared with heldPages, which parses it afresh rather than
// cloning pages (a clone fails once pages has run, as notFoundPage does).
const pageText = `
{{define "head"}}<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{if .}}{{.}}{{else}}zipgate — パスワード送信 / Password release{{end}}</title>
<style>
body{margin:0;background:#f3f4f6;color:#1f2328;font:16px/1.7 system-ui,-apple-system,"Hiragino Sans","Hiragino Kaku Gothic ProN","Yu Gothic UI","Yu Gothic",Meiryo,"Noto Sans CJK JP","Noto Sans JP",sans-serif}
main{max-width:46rem;margin:0 auto;padding:1.5rem 1rem 3rem}
header{font-size:.85rem;color:#656d76;letter-spacing:.05em;margin-bottom:.5rem}
h1{font-size:1.3rem;line-height:1.4;margin:0 0 1rem}
.en{display:block;color:#59636e;font-size:.88em;font-weight:normal}
.card{background:#fff;border:1px solid #d1d9e0;border-radius:8px;padding:1rem 1.25rem;margin:0 0 1rem}
.state{border-left:6px solid #0969da;background:#ddf4ff}
.state p{margin:0;font-size:1.1rem}
.state p.en{font-size:.95rem}
.done{border-left-color:#1a7f37;background:#dafbe1}
.canceled{border-left-color:#59636e;background:#eef1f4}
.failed{border-left-color:#cf222e;background:#ffebe9}
.msg{border:2px solid #bf8700;background:#fff8c5;font-weight:bold}
.msg p{margin:0}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin:0 0 .5rem}
.actions.after{margin:.6rem 0 0}
form{margin:0}
button{font:inherit;font-weight:bold;padding:.6rem 1.3rem;border-radius:6px;border:1px solid;cursor:pointer}
.cancel{background:#cf222e;border-color:#a40e26;color:#fff}
.release{background:#f6f8fa;border-color:#c8d1da;color:#1f2328}
.approve{background:#1a7f37;border-color:#116329;color:#fff}
input{font:inherit;width:100%;box-sizing:border-box;padding:.45rem .6rem;border:1px solid #c8d1da;border-radius:6px;margin:0 0 .7rem}
code{font:1.05em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef1f4;padding:.1rem .35rem;border-radius:4px}
.files{padding-left:1.2rem}
.files li{margin:0 0 .5rem;overflow-wrap:anywhere}
.after{margin:.9rem 0 0}
textarea{font:inherit;width:100%;box-sizing:border-box;min-height:5rem;padding:.4rem;border:1px solid #c8d1da;border-radius:6px}
label{display:block;font-size:.9rem;color:#59636e;margin:0 0 .3rem}
.why{margin:.6rem 0 0;padding-left:1.2rem}
.why li{margin:0 0 .4rem}
.state p.said{margin:.6rem 0 0;padding:.5rem .75rem;background:#fff;border-radius:6px;font-size:1rem;white-space:pre-wrap;overflow-wrap:anywhere}
.said .label{display:block;white-space:normal;font-size:.85rem;color:#59636e}
.note{font-size:.9rem;color:#59636e;margin:0 0 1rem}
.note .en{font-size:1em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.6rem 1.5rem;margin:0}
dt{color:#59636e;font-size:.9rem}
dd{margin:0;overflow-wrap:anywhere}
ul{margin:0;padding-left:1.2rem}
.size{color:#59636e;white-space:nowrap}
a{color:#0969da}
@media (max-width:34rem){dl{grid-template-columns:1fr;gap:.1rem}dd{margin-bottom:.6rem}}
</style>
</head>
<body>
<main>
<header>zipgate</header>
{{end}}

{{define "foot"}}</main>
</body>
</html>
{{end}}

{{define "simple"}}{{template "head"}}<div class="card">
<p>{{.Msg.Ja}}<span class="en" lang="en">{{.Msg.En}}</span></p>
{{- if .Back}}
<p><a href="{{.Back}}">送信の状態を見る<span class="en" lang="en">Show the status</span></a></p>
{{- end}}
</div>
{{template "foot"}}{{end}}

{{define "job"}}{{template "head"}}<h1>添付ファイルのパスワード<span class="en" lang="en">Password for the attachments</span></h1>
{{with .Msg}}<div class="card msg" role="alert">
<p>{{.Ja}}<span class="en" lang="en">{{.En}}</span></p>
</div>
{{end}}<div class="card state {{.Class}}">
<p>{{.State.Ja}}</p>
<p class="en" lang="en">{{.State.En}}</p>
</div>
{{with .Link}}<div class="card state {{.Class}}" id="link">
<p>{{.State.Ja}}</p>
<p class="en" lang="en">{{.State.En}}</p>
{{- if .First}}
<p class="said"><span class="label">最初のダウンロード / First download</span>{{.First}}</p>
{{- end}}
</div>
{{if .Open}}<div class="actions">
<form method="post" action="{{$.Links.Revoke}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><button class="cancel" type="submit">取り消す / Take back</button></form>
</div>
<p class="note">宛先を間違えた場合は「取り消す」を押してください。パスワードが送られた後でも、ファイルはダウンロードできなくなります。
<span class="en" lang="en">If the mail went to the wrong person, press Take back: the files can no longer be downloaded, even after the password went.</span></p>
{{end}}{{end}}{{if .Open}}<div class="actions">
{{- if not .NoCancel}}
<form method="post" action="{{.Links.Cancel}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><button class="cancel" type="submit">送信を取り消す / Cancel</button></form>
{{- end}}
{{- if not .NoRelease}}
<form method="post" action="{{.Links.Release}}"><input type="hidden" name="csrf" value="{{.CSRF}}"><button class="release" type="submit">今すぐ送る / Release now</button></form>
{{- end}}
</div>
{{- if not .NoCancel}}
<p class="note">宛先を間違えた場合は「送信を取り消す」を押してください。パスワードは送られず、宛先の方は添付ファイルを開けません。
<span class="en" lang="en">If the mail went to the wrong person, press Cancel: the password is not sent and the recipients cannot open the attachments.</span></p>
{{- end}}
{{end}}<div class="card">
<dl>
<dt>件名 / Subject</dt>
<dd>{{if .Subject}}{{.Subject}}{{else}}（件名なし / no subject）{{end}}</dd>
<dt>宛先 / Recipients</dt>
<dd><ul>{{range .Rcpts}}<li>{{.}}</li>{{end}}</ul></dd>
{{- if not .Link}}
<dt>ZIP ファイル / Zip file</dt>
<dd>{{.ZipName}}</dd>
{{- end}}
<dt>添付ファイル / Attachments</dt>
<dd><ul>{{range .Files}}<li>{{.Name}} <span class="size">({{.Size}})</span></li>{{end}}</ul></dd>
<dt>送信日時 / Mail sent</dt>
<dd>{{.Sent}}</dd>
{{- if .Due}}
<dt>パスワード送信予定 / Password due</dt>
<dd>{{.Due}}</dd>
{{- end}}
</dl>
</div>
{{- if .Links.Page}}
<p><a href="{{.Links.Page}}">最新の状態を見る<span class="en" lang="en">Show the current status</span></a></p>
{{- end}}
{{template "foot"}}{{end}}
`
