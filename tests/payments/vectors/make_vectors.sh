#!/bin/sh
# Known-answer vectors for tests/payments, made with the openssl command line: an
# implementation independent of the `cryptography` code under test. PKCS#1 v1.5 signatures
# are deterministic, so the same key and message always give these bytes.
#
# The keys are throwaway test keys made here; they sign nothing real. Run from this folder:
#   sh make_vectors.sh      (rewrites the keys and vectors.json; commit the result)
set -eu
openssl genrsa -traditional -out merchant_key_pkcs1.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in merchant_key_pkcs1.pem -out merchant_key_pkcs8.pem
openssl genrsa -out provider_key.pem 2048 2>/dev/null
openssl rsa -in provider_key.pem -pubout -out provider_pub.pem 2>/dev/null

sig() {  # sig KEY FILE -> base64 on one line
  openssl dgst -sha256 -sign "$1" "$2" | openssl base64 -A
}

# 1. An Alipay request's sign content (rule 1: with sign_type, no empty values).
printf '%s' 'app_id=2014072300007148&biz_content={"out_trade_no":"GV20260301000001","total_amount":"12.30","subject":"电费充值 A-101","product_code":"QUICK_WAP_WAY","timeout_express":"30m"}&charset=utf-8&format=JSON&method=alipay.trade.wap.pay&notify_url=https://park.example/pay/notify/alipay&sign_type=RSA2&timestamp=2026-03-01 12:00:00&version=1.0' > alipay_request.txt
# 2. An Alipay notification's sign content (rule 2: no sign_type, empty values kept).
printf '%s' 'app_id=2014072300007148&body=&buyer_id=2088102122524333&charset=utf-8&fund_bill_list=[{"amount":"12.30","fundChannel":"ALIPAYACCOUNT"}]&gmt_create=2026-03-01 12:00:05&gmt_payment=2026-03-01 12:00:09&notify_id=ac05099524730693a8b330c5ecf72da9786&notify_time=2026-03-01 12:00:10&notify_type=trade_status_sync&out_trade_no=GV20260301000001&passback_params=&seller_id=2088101106499364&subject=电费充值 A-101&total_amount=12.30&trade_no=2026030122001424330501234567&trade_status=TRADE_SUCCESS&version=1.0' > alipay_notify.txt
# 3. WeChat Pay's documented request example (签名生成: GET /v3/certificates).
printf 'GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n' > wechat_request.txt
# 4. A WeChat Pay callback: timestamp\nnonce\nbody\n over the raw body in wechat_body.json.
printf '%s' '{"id":"EV-2018022511223320873","create_time":"2026-03-01T12:00:10+08:00","resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"PLACEHOLDER","associated_data":"transaction","nonce":"fdasflkja484"}}' > wechat_body.json
{ printf '1772337610\nfdasfwe4ggr23a2\n'; cat wechat_body.json; printf '\n'; } > wechat_callback.txt

cat > vectors.json <<JSON
{
  "alipay_request_sign": "$(sig merchant_key_pkcs1.pem alipay_request.txt)",
  "alipay_notify_sign": "$(sig provider_key.pem alipay_notify.txt)",
  "wechat_request_sign": "$(sig merchant_key_pkcs8.pem wechat_request.txt)",
  "wechat_callback_sign": "$(sig provider_key.pem wechat_callback.txt)"
}
JSON
echo "vectors written"
