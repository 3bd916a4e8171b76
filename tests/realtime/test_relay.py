import openai


def test_text(realtime_model, live_ogem, make_key):
    realtime_model()
    secret = make_key()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    with client.realtime.connect(model="voice") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi there"}],
            }
        )
        conn.response.create()
        text = ""
        for event in conn:
            print(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                print(event.response.usage)
                break
    assert text == "Hello from the realtime emulator."
